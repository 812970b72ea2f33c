"""`outreach serve`: the app, its routes and the services behind them."""
