import torch

from tsvq.engine.optim import adamw, adamw_cosine


def test_adamw_is_fused_on_cpu_and_steps_like_the_per_parameter_loop():
    g = torch.Generator().manual_seed(0)
    ours = [torch.randn(300, generator=g, requires_grad=True), torch.randn(7, 5, generator=g, requires_grad=True)]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    opt = adamw(ours, 1e-2, 1e-2)
    ref = torch.optim.AdamW(theirs, lr=1e-2, weight_decay=1e-2, foreach=False)
    assert opt.defaults["fused"] and not ref.defaults["fused"]
    for _ in range(10):
        grads = [torch.randn(p.shape, generator=g) for p in ours]
        for params, o in ((ours, opt), (theirs, ref)):
            for p, gr in zip(params, grads):
                p.grad = gr.clone()
            o.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # a state saved by the per-parameter loop resumes in the fused one
    resumed = adamw([p.detach().clone().requires_grad_() for p in theirs], 1e-2, 1e-2)
    resumed.load_state_dict(ref.state_dict())
    assert float(resumed.state[resumed.param_groups[0]["params"][0]]["step"]) == 10


def test_adamw_falls_back_where_fused_is_unsupported_and_the_trainer_uses_it():
    assert not adamw([torch.nn.Parameter(torch.empty(3, device="meta"))], 1e-3, 0.0).defaults["fused"]

    class Cfg:
        lr, weight_decay, epochs, max_steps = 1e-3, 1e-3, 2, 0

    conf = adamw_cosine(torch.nn.Linear(3, 2), Cfg(), steps_per_epoch=5)
    assert conf["optimizer"].defaults["fused"] and conf["lr_scheduler"]["scheduler"].T_max == 10
