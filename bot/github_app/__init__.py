"""Setting up Ritmo's GitHub App: the manifest (permissions, events, webhook) and GitHub's
manifest flow that registers it. May import bot.config and bot.webhooks; nothing imports it
but the CLI and `ritmo doctor`."""
