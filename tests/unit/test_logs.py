import json
import logging

from tertulia.logs import JsonFormatter


def test_json_lines_carry_meeting_context() -> None:
    record = logging.LogRecord("tertulia.signal", logging.INFO, __file__, 1, "participant %s",
                               ("joined",), None)
    record.room = "standup"
    record.participant = "p-1"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "participant joined"
    assert (entry["level"], entry["logger"]) == ("info", "tertulia.signal")
    assert (entry["room"], entry["participant"]) == ("standup", "p-1")
    assert entry["time"].endswith("Z") and "endpoint" not in entry
