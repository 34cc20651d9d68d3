"""The KartStudio window (PyQt6 + pyqtgraph). Widgets wired to the engine and to background workers."""
