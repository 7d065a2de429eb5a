"""DDP: two gloo processes on CPU give the same step as one process on the same global batch."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from ecgbook import distributed as dist
from ecgbook import lead_agnostic_ssl as las
from ecgbook.models.wav2vec2 import Wav2Vec2Pretrainer, wav2vec2_config

METHOD = "W2V+CMSC+RLM"


def _setup(seed=0):
    torch.manual_seed(seed)
    cfg = wav2vec2_config("smoke", dropout=0.0, attention_dropout=0.0, dropout_input=0.0, dropout_features=0.0)
    model = Wav2Vec2Pretrainer(cfg).train()
    g = torch.Generator().manual_seed(1)
    pairs = torch.randn(4, 12, 1000, generator=g) * 0.3
    index = torch.tensor([10, 11, 12, 13])
    ids = torch.tensor([0, 0, 1, 2])            # pairs 0 and 1 from one recording: CMSC positives across ranks
    return model, pairs, index, ids


def _step(net, model, pairs, index, ids):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss, parts = las.pretrain_loss(net, pairs, index, ids, las.objective(METHOD), seed=0, epoch=0)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return parts


def _worker(rank, world, port, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    device = dist.init("gloo")
    model, pairs, index, ids = _setup()
    net = dist.wrap(model, device)
    share = slice(rank * 2, rank * 2 + 2)
    parts = _step(net, model, pairs[share], index[share], ids[share])
    if dist.is_main():
        torch.save({"state": model.state_dict(), "parts": parts}, out)
    dist.barrier()
    dist.cleanup()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_step_equals_single_process(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "ddp.pt"
    mp.start_processes(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True, start_method="spawn")
    model, pairs, index, ids = _setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    parts = _step(model, model, pairs, index, ids)
    ddp = torch.load(out, weights_only=True)
    assert abs(ddp["parts"]["cmsc"] - parts["cmsc"]) < 1e-5      # the global CMSC loss, same on every rank
    changed = 0
    for k, v in model.state_dict().items():
        assert torch.allclose(ddp["state"][k], v, atol=2e-5, rtol=1e-4), k
        changed += int(not torch.equal(v, before[k]))
    assert changed > 10                                            # the step did move the parameters


def test_helpers_without_process_group():
    assert dist.world_size() == 1 and dist.rank() == 0 and dist.is_main()
    x = torch.randn(3, 2)
    assert dist.gather_with_grad(x) is x and dist.all_reduce_with_grad(x) is x
    assert torch.isclose(dist.global_mean(torch.tensor(6.0), 3), torch.tensor(2.0))
    assert dist.sampler(list(range(4))) is None
    with dist.main_first():
        pass
    m = torch.nn.Linear(2, 2)
    assert dist.unwrap(dist.wrap(m, torch.device("cpu"))) is m


@pytest.mark.parametrize("env, expected", [
    ({}, (1, 0, 0)),
    ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}, (4, 3, 1)),
    ({"WORLD_SIZE": " 2 ", "RANK": "1"}, (2, 1, 0)),
])
def test_environment_parses_torchrun_variables(env, expected, monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert dist.environment() == expected


@pytest.mark.parametrize("env, name", [
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE"), ({"WORLD_SIZE": "-1"}, "WORLD_SIZE"), ({"WORLD_SIZE": ""}, "WORLD_SIZE"),
    ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK"), ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK"),
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "5"}, "LOCAL_RANK"),
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE"),                           # without RANK, MASTER_ADDR, MASTER_PORT
])
def test_malformed_torchrun_variables_fail_naming_them(env, name, monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=f"{name}="):
        dist.environment()
    with pytest.raises(ValueError, match=f"{name}="):
        dist.init()
