"""KartStudio: teach a neural network to drive Mario Kart 64 from your own play, then race it."""

__version__ = "0.1.0"
