"""Spiders of this project: each module may define Spider subclasses with a unique `name`."""
