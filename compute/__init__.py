"""How a network computes here, chosen once for training and inference alike: its precision
(precision), the ways the flags leave open and the fastest of them, timed by one timer (choice),
what was measured kept per machine and job (cache), risky ways tried in a child process first
(trial), and runs that repeat bit for bit on a GPU (determinism).
"""
