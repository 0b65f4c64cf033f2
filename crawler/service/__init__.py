"""The crawl service (`python -m crawler serve`): runs of the project's spiders started,
queued, paused, resumed and cancelled over HTTP, every run and its history kept in SQLite
so that a restart loses nothing and resumes what was running.

    store.py   the runs' records (SQLite, under the data directory)
    runs.py    the runs as processes: the queue, max_runs, pause, resume, cancel
    api.py     the HTTP API, and Scrapyd's endpoints in Scrapyd's shapes
    server.py  the service: its socket, its parts, its lifecycle
"""
