"""sipresponder: the reference SIP responder bundled with sipguard."""

__version__ = "0.1.0"
