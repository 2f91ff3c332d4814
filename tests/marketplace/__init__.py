"""Tests of tasks, offers, milestones, reviews, discovery and deal lifecycles."""
