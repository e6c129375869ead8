"""Where events go: one folder per destination type, and the registry that maps type → Provider."""
