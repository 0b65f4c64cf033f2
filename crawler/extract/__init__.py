"""Extraction helpers on a response: Scrapy's item loaders, structured data (JSON-LD,
microdata, RDFa, OpenGraph), and a page's main content as Markdown and plain text. Their
libraries are the optional `extract` extra: `pip install 'crawler[extract]'`."""
