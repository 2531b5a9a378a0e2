"""Imported last by the local executor's fork server, after the modules its workers need: freezes its heap.

``gc.freeze()`` moves every object alive now (the module graphs of torch, the engine, braindecode) into a
permanent generation the collector no longer walks: the forked workers share those pages instead of touching
them in their collections, and the server's own exit skips collecting them (about 2 s of CPU on a 2-core
machine, while the run's output pipe was still held open by it).
"""

import gc

gc.freeze()
