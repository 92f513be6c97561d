"""The console: the takedown queue, tickets and figures in the browser for the staff who work them.

``exposure`` and ``charts`` are pure; ``store`` reads and writes the console's own records and
calls the takedown stores for everything that changes a ticket; ``http`` serves the pages.
"""
