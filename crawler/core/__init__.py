"""The crawl's machinery, in the order a request meets it: the engine (lifecycle),
admission and the scheduler (what enters the frontier, and when workers get it), the
processor (downloader middlewares and the network), the scraper (callbacks, pipelines,
outputs), and what they share: politeness, retries, robots.txt, trap guards, plugins."""
