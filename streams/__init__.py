"""livewatch's Faust application, its I/O, and the event-time core it feeds."""
