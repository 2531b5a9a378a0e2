"""How cells run: the engine trains and evaluates one cell (or a batch of cells trained as one), with its data
split (``splits``), image embeddings (``embedding``) and the on-disk cache (``cache``) prepared once; the
runner hands planned cells to an executor and stores each result (``runner``)."""
