import json

import pytest
from transformers import HfArgumentParser

from hf_lilaw.mlc import MetaLabelCorrectionConfig


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mlc_meta_amsgrad", "mlc_meta_amsgrad must be True or False, got 'false'"),
        ("mlc_skip_gate", "mlc_skip_gate must be True, False or None (per method), got 'false'"),
    ],
)
def test_a_quoted_false_from_a_settings_file_is_refused_not_read_as_true(tmp_path, name, message):
    """A quoted "false" reached the trainer as a truthy string: the meta Adam ran AMSGrad, the skip gate was built."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"output_dir": str(tmp_path), name: "false"}))
    with pytest.raises(ValueError) as refused:
        HfArgumentParser(MetaLabelCorrectionConfig).parse_json_file(str(settings))
    assert str(refused.value) == f"{message}; in a JSON or YAML file write true or false without quotes."
    settings.write_text(json.dumps({"output_dir": str(tmp_path), name: False}))
    (args,) = HfArgumentParser(MetaLabelCorrectionConfig).parse_json_file(str(settings))
    assert getattr(args, name) is False
