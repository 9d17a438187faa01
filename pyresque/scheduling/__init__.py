"""Time: delayed jobs, recurring schedules and the scheduler process that moves them."""
