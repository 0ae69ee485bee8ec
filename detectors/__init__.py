"""Pure detection logic: plain values and numpy arrays in, alerts out. No I/O."""
