from hypothesis import given, settings

from aw_tui.model.codec import CodecError, state_from_json, state_to_json
from aw_tui.model.state import fold

from .event_factory import event_streams

import json
import pytest


@settings(max_examples=150, deadline=None)
@given(events=event_streams())
def test_checkpoint_round_trips_exactly_through_json_text(events):
    state = fold(events)
    text = json.dumps(state_to_json(state))
    assert state_from_json(json.loads(text)) == state


@pytest.mark.parametrize("damage", [
    lambda d: d.pop("agents"),
    lambda d: d.update(codec=99),
    lambda d: d.update(memo="x"),
    lambda d: d["logs"].append({"seq": 1, "ts": "2026-01-01T00:00:00Z", "type": "run.state", "state": "IDLE"}),
])
def test_a_damaged_checkpoint_is_refused_not_half_loaded(damage):
    data = state_to_json(fold([]))
    damage(data)
    with pytest.raises(CodecError):
        state_from_json(data)
