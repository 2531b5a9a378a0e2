"""How cells run: the engine trains and evaluates one cell (``engine``), or several cells of one recipe trained
as one stacked model (``batched``), with its data split (``splits``), image embeddings (``embedding``), the
on-disk cache (``cache``) and the process's share of the CPUs (``resources``). The runner
(:mod:`eegbench.runner`) hands planned cells here and stores each result."""
