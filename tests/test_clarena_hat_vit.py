"""specc's HAT ViT-Ti/16 (`specs/vit_ti16_hat.cl --base clarena`) trained by CLArena's own HAT
algorithm under Lightning's Trainer, through the client harness (tests/clarena_client/harness.py).

CLArena has no transformer, so there is no CLArena backbone to compare the run with (as
tests/test_clarena_client.py does for the MLP and ResNets). What is checked instead is HAT's promise
under CLArena's own gradient compensation, which is exact only if every masked unit, measure,
per-task part and the test stage are right together: after task 2 is trained, task 1's test-stage
outputs are the same, bit for bit, as right after task 1. Plus the record is complete (every step,
test batch and snapshot; training moved the backbone; masks and cumulative masks stored) and the
run is reproducible.
"""
from __future__ import annotations

import pytest
import torch

from clarena_client.harness import HAT_KW, Scenario, assert_same, check_record, run

pytestmark = pytest.mark.usefixtures("no_stub_left_behind")

# 16x16 images, one 16x16 patch: two tokens (class token + patch) through the 12 blocks of 192 features
SCENARIO = Scenario("hat-vit_ti16", "HAT", "HATMaskViT_Ti16",
                    {"output_dim": 192, "gate": "sigmoid", "img_size": 16}, HAT_KW, (3, 16, 16))


@pytest.fixture(scope="module")
def record(clarena, specc, tmp_path_factory):
    return run(SCENARIO, specc.cls(SCENARIO.backbone), clarena, tmp_path_factory.mktemp("hat_vit"))


def test_clarena_hat_trains_the_vit_and_task_1_is_kept_exactly(record):
    check_record(record, SCENARIO)
    after_1 = record["tasks"][1]["test_stage_forward"][1]
    after_2 = record["tasks"][2]["test_stage_forward"][1]
    assert_same(after_1, after_2)
    # not vacuous: task 2 trained the shared weights, and the live per-task parts
    sd1, sd2 = (record["tasks"][t]["after_test"]["state_dict"] for t in (1, 2))
    for key in ("backbone.blocks.0.attn.qkv.weight", "backbone.blocks.11.mlp.fc2.weight", "backbone.pos_embed",
                "backbone.blocks.0.norm1.weight"):
        assert not torch.equal(sd1[key], sd2[key]), key
    for key in ("backbone.pos_embeds.1", "backbone.cls_tokens.1", "backbone.blocks.0.norm1s.1.weight"):
        assert torch.equal(sd1[key], sd2[key]), key
