from dataclasses import dataclass


@dataclass(frozen=True)
class Output:
    result: dict
    input_tokens: int
    output_tokens: int = 0
