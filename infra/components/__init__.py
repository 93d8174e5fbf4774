"""One module per platform component, each a pulumi.ComponentResource."""
