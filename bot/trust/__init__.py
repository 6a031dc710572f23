"""Trust: which commits Ritmo made or allowed, and what to do about the others (drift).

Pure rules over plain data live here (`drift`); `watch` wires them to the mirror, the
writer, the outbox and the forge. git and gpg are only ever run by bot/manifests/.
"""
