"""`ritmo doctor`: every part Ritmo needs, checked in order, one line each: ok, or the fix.

findings.py is the vocabulary, local.py the parts on this machine and the git remote,
github.py (with github_rules.py, pure) the GitHub App, run.py the order. May import bot.config,
bot.manifests, bot.policy, bot.store, bot.forge and bot.github_app; nothing imports it but
the CLI."""
