"""Broker topic names. One place, so that publishers and subscribers agree."""

from __future__ import annotations

from bson import ObjectId


def user_topic(user_id: ObjectId) -> str:
    return f"user:{user_id}"


def access_topic(user_id: ObjectId) -> str:
    """Where a person's sessions hear that they may have ended (realtime/signals.py)."""
    return f"access:{user_id}"


def task_topic(task_id: ObjectId) -> str:
    return f"task:{task_id}"


def booking_topic(booking_id: ObjectId) -> str:
    return f"booking:{booking_id}"


def conversation_topic(conversation_id: ObjectId) -> str:
    return f"conversation:{conversation_id}"
