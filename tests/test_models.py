import pytest
import torch
from torch import nn

from advimb.config.sections import ModelConfig
from advimb.models import build_model, list_models


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("channels", [1, 3])
def test_every_model_trains_a_step_with_finite_gradients(name, channels):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, widths=(8, 16, 16), fc=32), 10, (channels, 32, 32), seed=0)
    x, y = torch.rand(8, channels, 32, 32), torch.arange(8)
    out = model(x)
    assert out.shape == (8, 10)
    loss = nn.functional.cross_entropy(out, y)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    # the step itself: weights move and the loss falls (measured with dropout off, so the loss
    # before and after the step is the same function of the weights)
    model.eval()
    model.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    before = [p.detach().clone() for p in model.parameters()]
    torch.optim.SGD(model.parameters(), lr=0.05).step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    with torch.no_grad():
        assert nn.functional.cross_entropy(model(x), y) < loss.detach()


def _count(model, cls):
    return sum(isinstance(m, cls) for m in model.modules())


def test_vgg_paper_matches_the_text():
    m = build_model(ModelConfig(), 10, (3, 32, 32))
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 64, 128, 128, 128]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert _count(m, nn.ReLU) == 8 + 1 and _count(m, nn.MaxPool2d) == 3 and _count(m, nn.Dropout) == 0
    fcs = [c for c in m.modules() if isinstance(c, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(4 * 4 * 128, 512), (512, 10)]


def test_vgg_authors_matches_their_code():
    m = build_model(ModelConfig(name="vgg_authors"), 10, (3, 32, 32))
    # block 1: ReLU after both convs; blocks 2-3: one ReLU after the third conv; FC ReLU
    assert _count(m, nn.ReLU) == 2 + 1 + 1 + 1
    drops = sorted(d.p for d in m.modules() if isinstance(d, nn.Dropout))
    assert drops == [0.25, 0.25, 0.25, 0.5]


def test_keras_init_and_seed():
    a = build_model(ModelConfig(widths=(4, 8, 8), fc=8), 10, (3, 32, 32), seed=1)
    b = build_model(ModelConfig(widths=(4, 8, 8), fc=8), 10, (3, 32, 32), seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert all((mod.bias == 0).all() for mod in a.modules() if isinstance(mod, (nn.Conv2d, nn.Linear)))


def test_normalisation_lives_inside_the_model():
    m = build_model(
        ModelConfig(widths=(4, 8, 8), fc=8, normalize="per_channel"),
        10,
        (3, 32, 32),
        seed=0,
        mean=[0.5, 0.4, 0.3],
        std=[0.2, 0.2, 0.2],
    )
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(m.normalize(x)[:, 0], (x[:, 0] - 0.5) / 0.2)
    assert "normalize.mean" in m.state_dict()


def test_unknown_model():
    from advimb.errors import UserError

    with pytest.raises(UserError, match="unknown model 'resnet9'"):
        build_model(ModelConfig(name="resnet9"), 10, (3, 32, 32))


GRAD_PROBE = """
import sys, warnings, torch
from advimb.config.sections import ModelConfig
from advimb.models import build_model
name, n = sys.argv[1], int(sys.argv[2])
model = build_model(ModelConfig(name=name, widths=(4, 8, 8), fc=16), 10, (3, 32, 32), seed=0)
model = model.to(memory_format=torch.channels_last).eval()  # eval: no dropout masks to differ
x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
y = torch.arange(n) % 10
grads = []
for _ in range(5):
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    grads.append([p.grad.clone() for p in model.parameters()])
assert all(torch.equal(a, b) for g in grads[1:] for a, b in zip(grads[0], g)), "gradients differ between calls"
def ref_grads(dtype):
    ref = build_model(ModelConfig(name=name, widths=(4, 8, 8), fc=16), 10, (3, 32, 32), seed=0).to(dtype).eval()
    with warnings.catch_warnings():  # flags() always sets allow_tf32, which warns on a CPU build
        warnings.simplefilter("ignore", UserWarning)
        with torch.backends.mkldnn.flags(enabled=False):  # PyTorch's own kernels, not oneDNN's
            torch.nn.functional.cross_entropy(ref(x.to(dtype).contiguous()), y).backward()
    return [p.grad.double() for p in ref.parameters()]
exact = ref_grads(torch.float64)
rel = lambda a, b: float((a.double() - b).norm() / (b.norm() + 1e-30))
# a deep net's fp32 gradient is itself up to ~4e-3 from the float64 one (measured on an AMD
# EPYC: PyTorch's own kernels 3.8e-3, oneDNN's 3.6e-3, per parameter at 32 images); the wrong
# kernel this guards against is off by order 1
bad = [(i, rel(a, e)) for i, (a, e) in enumerate(zip(grads[0], exact)) if rel(a, e) > 1e-2]
assert not bad, bad
err = max(rel(a, e) for a, e in zip(grads[0], exact))
print("ok", err)
"""


#: the papers' models, whose size ignores ``widths``: no convolution has the 2-7 input channels
#: of the kernel bug below, so 8 images check their gradients (32 made WRN-34-10 take 90 s)
FULL_SIZE = {"resnet18_cifar", "preact_resnet18", "wrn_28_10", "wrn_34_10"}


@pytest.mark.parametrize("name", list_models())
def test_every_model_gives_the_same_correct_gradient_at_every_call_on_tiny_widths(name):
    """The smoke preset's widths (4/8/8), channels_last as the trainer runs: the weight
    gradients are equal at every call and within 1% of the float64 gradient (PyTorch's own
    kernels), per parameter. In a subprocess with a
    time limit, because the kernel this guards against (oneDNN's AVX2 strided 1x1 weight
    gradient, see advimb.models.StridedPointwise) hangs or crashes as often as it is wrong."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", GRAD_PROBE, name, str(8 if name in FULL_SIZE else 32)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0 and r.stdout.startswith("ok"), (r.returncode, r.stderr[-1500:])
