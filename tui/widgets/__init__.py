"""Small widgets and formatting helpers shared by the console screens."""
