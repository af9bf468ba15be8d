"""The admin console: per-department pages (web), the data behind them and their charts."""
