"""Page readers, one module per site layout.

A reader takes a response and returns plain data (which strings sit where), never field values:
turning strings into values is the job of ``crawler.processors`` and ``crawler.loaders``.
Each layout keeps all its selectors in one ``SELECTORS`` table; a third layout is one more module here.
"""
