"""The local index: a cache of what git says, rebuilt from git by `ritmo reindex`."""
