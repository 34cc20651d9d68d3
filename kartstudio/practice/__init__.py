"""The practice track: a no-ROM two-seat game on Gymnasium CarRacing, its expert driver, the
driving score (eval) and DAgger. See docs/practice.md."""
