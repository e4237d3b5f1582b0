"""bkm watch keeps each job on its row while it is shown: a status change does not reorder."""

from bkm.cli.watch import placed


def event(job_id: str, status: str, name: str) -> dict:
    return {"job_id": job_id, "status": status, "name": name}


def test_a_job_keeps_its_row_and_new_ones_come_in_below():
    places: dict[str, int] = {}
    first = placed([event("2", "queued", "a"), event("1", "running", "b")], places)
    assert [e["name"] for e in first] == ["b", "a"]  # the view's order at first: running, then queued
    # b pauses and a starts: neither moves.
    again = placed([event("1", "paused", "b"), event("2", "running", "a")], places)
    assert [e["name"] for e in again] == ["b", "a"]
    # b leaves the view; c comes in below a.
    later = placed([event("3", "running", "c"), event("2", "running", "a")], places)
    assert [e["name"] for e in later] == ["a", "c"]
    assert set(places) == {"2", "3"}
