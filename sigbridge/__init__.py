"""sigbridge: a MetaTrader 5 bridge daemon serving Multi-Head Self-Attention trading signals."""

__version__ = "0.1.0"
