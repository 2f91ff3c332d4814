"""Tests of the channels beyond the app: SMS through Twilio with phone verification, and web
push to browsers."""
