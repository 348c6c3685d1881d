"""swarmchat: a user-proxy agent that delegates to specialist agents."""

__version__ = "0.1.0"
