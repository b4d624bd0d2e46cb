"""The saga's shared protocol: rules every service applies the same way (operator requests)."""
