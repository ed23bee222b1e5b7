"""unirank: train, evaluate and serve neural rankers on one backbone."""

__version__ = "0.1.0"
