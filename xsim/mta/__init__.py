"""Multi-task adaptation: tasks and masks, the reprogramming controller, strategies, endurance."""
