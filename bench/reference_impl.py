"""The reference implementation's formulation of the kit's SemNOMA, on the same weights: the baseline that
`bench/train_speed.py` measures the kit against (and `tests/test_reference_impl.py` checks to fp32 tolerance).

What the reference code does differently from the kit (same arithmetic, different formulation):
  * every tensor stays NCHW (contiguous_format); nothing is channels-last;
  * its channels-first LayerNorm: u = x.mean(1), s = ((x - u)^2).mean(1), x = (x - u)/sqrt(s + eps),
    then weight[:, None, None] * x + bias[:, None, None]  (timm's LayerNorm2d permutes to NHWC instead);
  * its ConvNeXt block: depthwise 7x7 conv (NCHW) -> permute to NHWC -> nn.LayerNorm -> Linear(4x) -> GELU
    -> Linear -> layer scale gamma -> permute back -> drop-path residual  (the kit: 1x1 convs, channels-last);
  * one encoder call per user (a Python loop), one decoder call per user also for a shared (teacher) decoder;
  * non-fused, non-foreach AdamW (wd 1e-4) and inference under no_grad.

`to_reference(model)` returns a deep copy of a kit SemNOMA / OrthogonalTeacher that computes in that formulation;
the kit's own modules keep one forward path.
"""
from __future__ import annotations
import copy, types
import torch
import torch.nn.functional as F
from torch import nn, Tensor
from timm.layers import LayerNorm2d


class RefLayerNorm2d(nn.Module):
    "The reference's channels-first LayerNorm on the weights of a timm LayerNorm2d. x: (N, C, H, W) NCHW"
    def __init__(self, ln: LayerNorm2d):
        super().__init__()
        self.weight, self.bias, self.eps = ln.weight, ln.bias, ln.eps

    def forward(self, x: Tensor) -> Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class RefConvNeXtBlock(nn.Module):
    "The reference's ConvNeXt block on the weights (and parameter names) of a kit `layers.ConvNeXtBlock`. x: (N, C, h, w) NCHW"
    def __init__(self, blk):
        super().__init__()
        self.dwconv, self.norm, self.mlp, self.ls, self.drop_path = blk.dwconv, blk.norm, blk.mlp, blk.ls, blk.drop_path

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)                                             # (N, h, w, C)
        y = F.layer_norm(y, (y.shape[-1],), self.norm.weight, self.norm.bias, self.norm.eps)   # nn.LayerNorm
        y = F.gelu(F.linear(y, self.mlp.fc1.weight.flatten(1), self.mlp.fc1.bias))        # Linear C -> 4C
        y = self.ls.gamma * F.linear(y, self.mlp.fc2.weight.flatten(1), self.mlp.fc2.bias)  # Linear 4C -> C, gamma
        return x + self.drop_path(y.permute(0, 3, 1, 2))


def _encoder_forward(self, x: Tensor, side: Tensor, *, users=None) -> Tensor:  # (B, K, c, h, w)
    "One encoder call per user, NCHW (the reference's loop)."
    B, K = x.shape[:2]
    emb = (self.device_emb if users is None else self.device_emb[users])
    emb = emb.expand(B, -1, -1, -1, -1) if emb.ndim == 4 else emb
    xe = torch.cat([x, emb.to(x.dtype)], 2)
    return torch.stack([self.encode(xe[:, k].contiguous(), side[:, k]) for k in range(K)], 1)


def _decoder_forward(self, y: Tensor, side: Tensor):
    "The kit decoder's sequence without the channels-last conversion."
    from kdd_semnoma.deepjscc import DecoderOutput, out_activation
    f = self.head(y.contiguous()); seq = [f]
    for j in range(1, len(self.seq_names)): f = self._element(j, f, side); seq.append(f)
    # the reference ends in the raw conv (out_act 'none'); this formulation follows the kit model's out_act, same function
    return DecoderOutput(out_activation(self.out(f), self.cfg.out_act), [seq[4 * i + 3] for i in range(self.n_stages)], seq)


def _semnoma_decode(self, rx: Tensor, side: Tensor) -> tuple:
    "One decoder call per user, also when the decoder is shared."
    outs = [self.decoders[0 if self.shared_decoder else k](rx[:, k], side[:, k]) for k in range(rx.shape[1])]
    stack = lambda fs: [torch.stack(f, 1) for f in zip(*fs)]
    return torch.stack([o.x_hat for o in outs], 1), stack([o.feats for o in outs]), stack([o.seq for o in outs])


def _swap(module: nn.Module) -> None:
    "Replace LayerNorm2d and ConvNeXtBlock children (recursively) by their reference formulations."
    from kdd_semnoma.layers import ConvNeXtBlock
    for name, child in module.named_children():
        if isinstance(child, LayerNorm2d): setattr(module, name, RefLayerNorm2d(child))
        elif isinstance(child, ConvNeXtBlock): setattr(module, name, RefConvNeXtBlock(child))
        else: _swap(child)


def to_reference(model: nn.Module) -> nn.Module:
    "A deep copy of a kit SemNOMA / OrthogonalTeacher computing in the reference formulation (same weights, NCHW)."
    ref = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    _swap(ref)
    ref.encoder.forward = types.MethodType(_encoder_forward, ref.encoder)
    for d in ref.decoders: d.forward = types.MethodType(_decoder_forward, d)
    ref.decode = types.MethodType(_semnoma_decode, ref)
    return ref


def reference_adamw(model: nn.Module, lr: float = 1e-4, weight_decay: float = 1e-4) -> torch.optim.Optimizer:
    "The reference's optimiser: plain (neither fused nor foreach) AdamW."
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=False, fused=False)
