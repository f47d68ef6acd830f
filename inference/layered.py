"""Tiles at about the price of whole frames: the network run layer by layer over all the tiles,
each layer once. Instance norm (and the squeeze-excite gate) needs the whole frame's statistics,
which no tile has until every tile has reached that layer. So the network's forward pass, traced
with torch.fx (norm layers kept whole), is cut at its norm layers into segments; each segment runs
over every tile in turn, the statistics of the norm layer that ends it are summed over the tiles'
cores, and the values a later segment needs (the activation, a U-Net's skips, a residual's input)
wait in RAM that no budget asked to keep free, or in scratch files on disk. inference/tiles.py's
run_tiled gets the same statistics by running the tiles again from the input for every norm layer, about L/2 + 1 passes for L norm layers; this
gives the same output, computed once. A network torch.fx cannot trace (Python control flow on its
input's values, say) runs that way instead.

    plan = LayerPlan.of(network)                      # None when it cannot be traced
    frames = run_by_layer(plan, prepare, finish, clips, tiling)    # uint8 (N, T, H, W, 3) -> the same
"""
import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.fx

from inference.tiles import combined, core_sums, keep_cores, norm_layers, pass_input, passes_over, sharing


class _NormsWhole(torch.fx.Tracer):
    """torch.fx's tracer, with vgan's norm layers as single nodes (their `shared` statistics are set per tile)."""

    def __init__(self, norms):
        super().__init__()
        self.norms = set(norms)

    def is_leaf_module(self, module, qualified_name):
        return module in self.norms or super().is_leaf_module(module, qualified_name)


@dataclass
class LayerPlan:
    graph_module: torch.fx.GraphModule
    segments: list  # [[Node]]: the nodes between two norm layers, each segment from one norm node up to the next
    norms: list  # [Node]: the norm node that ends each segment but the last (and begins the next)
    live_in: list  # [[Node]]: per segment, the values it uses that earlier segments made
    kept: list  # [[Node]]: per segment, the values it makes that later segments use
    freed: list  # [[Node]]: per segment, the values no segment after it uses

    @classmethod
    def of(cls, network):
        """The plan of `network`'s forward pass, or None when torch.fx cannot trace it."""
        norms = norm_layers(network)
        try:
            graph = _NormsWhole(norms).trace(network)
        except Exception:  # noqa: BLE001 - any tracing failure means: run the tiles the other way
            return None
        module = torch.fx.GraphModule(network, graph)  # shares network's modules: their `shared` is set on them
        nodes = list(graph.nodes)
        cuts = [i for i, node in enumerate(nodes) if node.op == "call_module" and module.get_submodule(node.target) in norms]
        bounds = [0, *cuts, len(nodes)]
        segments = [nodes[a:b] for a, b in zip(bounds, bounds[1:])]
        where = {node: s for s, segment in enumerate(segments) for node in segment}
        last_use = {node: max([where[user] for user in node.users], default=where[node]) for node in nodes}
        live_in = [sorted({arg for node in segment for arg in node.all_input_nodes if where[arg] < s}, key=nodes.index)
                   for s, segment in enumerate(segments)]
        kept = [[node for node in segment if last_use[node] > s] for s, segment in enumerate(segments)]
        freed = [[node for node in nodes if where[node] < s and last_use[node] == s] for s in range(len(segments))]
        return cls(module, segments, [nodes[i] for i in cuts], live_in, kept, freed)


class Scratch:
    """The values kept between segments, under (pass, node name): in RAM (on a GPU, copied to the
    host) while they fit in `memory` bytes, on disk after that, read back memory-mapped (used where
    it lies in the page cache, not copied); values that are not tensors, in memory. Tensors come
    back to the device they came from, in their dtype and memory layout."""

    def __init__(self, folder, memory=0):
        self.folder, self.memory, self.held = Path(folder), memory, 0
        self.meta, self.values = {}, {}

    def put(self, key, value):
        if not isinstance(value, torch.Tensor):
            self.values[key] = value
            return
        layout = torch.channels_last_3d if value.dim() == 5 and not value.is_contiguous() and value.is_contiguous(
            memory_format=torch.channels_last_3d) else torch.contiguous_format
        size = value.numel() * value.element_size()
        if self.held + size <= self.memory:
            self.held += size
            self.meta[key] = (None, value.dtype, value.shape, value.device, layout, size)
            self.values[key] = value.detach().cpu()
            return
        path = self.folder / f"{key[0]}_{key[1]}"
        value.detach().contiguous().cpu().view(torch.uint8).numpy().tofile(path)
        self.meta[key] = (path, value.dtype, value.shape, value.device, layout, 0)

    def get(self, key):
        path, dtype, shape, device, layout, _ = self.meta.get(key, (None,) * 6)
        if path is None:
            value = self.values[key]
            return value.to(device) if isinstance(value, torch.Tensor) else value
        raw = torch.from_numpy(np.memmap(path, dtype=np.uint8, mode="r+"))  # r+: torch wants a writable array; it is not written
        return raw.view(dtype).reshape(shape).to(device).contiguous(memory_format=layout)

    def drop(self, key):
        self.values.pop(key, None)
        if key in self.meta:
            path, *_, size = self.meta.pop(key)
            self.held -= size
            if path is not None:
                path.unlink()


def run_by_layer(plan, prepare, finish, clips, tiling, scratch_memory=0):
    """The network of `plan` over uint8 clips (N, T, H, W, 3) in `tiling`'s tiles, each layer once:
    `prepare(windows)` makes a pass's input tensor of its uint8 windows, `finish(output)` a uint8
    (n, T, h, w, 3) of its output; what waits between layers takes up to `scratch_memory` bytes of
    RAM, then disk. Returns uint8 (N, T, H, W, 3)."""
    passes = passes_over(clips, tiling)
    interpreter = torch.fx.Interpreter(plan.graph_module)
    out, statistics = np.empty_like(clips), {}
    with tempfile.TemporaryDirectory(prefix="vgan-tiles-") as folder:
        scratch = Scratch(folder, scratch_memory)
        for s, segment in enumerate(plan.segments):
            sums = []
            for number, part in enumerate(passes):
                windows, index = pass_input(part, clips)
                interpreter.env = {node: scratch.get((number, node.name)) for node in plan.live_in[s]}
                with opening_norm(plan, s, statistics, index):
                    for node in segment:
                        interpreter.env[node] = prepare(windows) if node.op == "placeholder" else interpreter.run_node(node)
                if s < len(plan.norms):  # the statistics of the norm layer that ends this segment, over the tiles' cores
                    sums.extend(core_sums(part, interpreter.env[plan.norms[s].args[0]]))
                    for node in plan.kept[s]:
                        scratch.put((number, node.name), interpreter.env[node])
                else:
                    keep_cores(out, finish(interpreter.env[segment[-1]]), part)  # the output node's value
            if s < len(plan.norms):
                statistics[plan.norms[s]] = combined(sums, len(clips))
            for node in plan.freed[s]:
                for number in range(len(passes)):
                    scratch.drop((number, node.name))
    return out


def opening_norm(plan, s, statistics, clips):
    """Segment s's first node, the norm layer the segment before ended with, normalising with the
    frame statistics of the clips `clips` (nothing for the first segment)."""
    if not s:
        return contextlib.nullcontext()
    node = plan.norms[s - 1]
    module = plan.graph_module.get_submodule(node.target)
    return sharing([module], {module: statistics[node]}, clips)
