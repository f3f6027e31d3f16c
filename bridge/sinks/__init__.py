"""Where events go: the terminal, JSON Lines, LSL, the dashboard, reports."""
