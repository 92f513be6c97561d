"""Hash-sharing connectors: lists that arrive by themselves (NCMEC, StopNCII, ThreatExchange, HMA banks).

``base`` declares what a connector is; ``registry`` finds them through the ``hashguard.exchanges``
entry points; ``store`` keeps the sources, their checkpoints and quarantine, and writes each fetched
page as a delta version of the source's lists; ``fetcher`` runs one fetch per source at a time;
``testing`` is the conformance kit every connector passes.
"""
