"""The offline answerer, split by what each step owns.

``units`` cuts a retrieved chunk into whole units of meaning (paragraph, list with its
intro, table with its header); ``amounts`` reads money and ranges; ``select`` scores units
against the question and picks table rows; ``compose`` quotes the winners with
"From <document> › <section> [n]". ``bot.llm.extractive.ExtractiveGenerator`` is the entry
point the factory builds.
"""
