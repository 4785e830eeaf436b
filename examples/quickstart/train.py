"""A tiny training script for the quickstart: fits y = a*x + b by gradient descent (stdlib only).

It logs its loss per epoch and its final parameters to the run history, and saves the model under
outputs/, which jupyter_amlexec collects after the run.
"""

import json
import os
import random
import sys

from azureml.logging import get_azureml_logger  # Workbench's logging API works unchanged

learning_rate = float(sys.argv[1]) if len(sys.argv) > 1 else 0.05
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
logger = get_azureml_logger()

random.seed(0)
points = [(x / 10, 3 * (x / 10) + 1 + random.uniform(-0.1, 0.1)) for x in range(50)]
a, b = 0.0, 0.0
logger.log("learning rate", learning_rate)
for epoch in range(epochs):
    grad_a = sum(2 * (a * x + b - y) * x for x, y in points) / len(points)
    grad_b = sum(2 * (a * x + b - y) for x, y in points) / len(points)
    a, b = a - learning_rate * grad_a, b - learning_rate * grad_b
    loss = sum((a * x + b - y) ** 2 for x, y in points) / len(points)
    logger.log("loss", loss)
    print(f"epoch {epoch:3d}  loss {loss:.4f}")

logger.log("a", a)
logger.log("b", b)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.json", "w") as f:
    json.dump({"a": a, "b": b}, f)
print("saved outputs/model.json")
