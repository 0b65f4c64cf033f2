"""Where items go: pipelines first, then every output of the crawl (files in .jsonl,
.json and .csv, PostgreSQL, any registered sink), as `-o`, `-O` or the `feeds` setting
name them."""
