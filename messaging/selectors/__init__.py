"""Reads for the inbox and team chats, always scoped to the actor's company."""

from .chats import *  # noqa: F403
from .inbox import *  # noqa: F403
from .window import *  # noqa: F403
