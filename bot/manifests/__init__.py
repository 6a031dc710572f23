"""The manifests repository engine: mirror, objects, signing, records, overlays, writer."""
