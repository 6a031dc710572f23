"""Promotion policy: the model, loading with line/column errors, and evaluation (pure);
which policy is in force (trust, pure), decided from its commits read through the
mirror (commits) and kept by its source and adoption."""
