"""Small helpers every layer shares (devices, ROS stamps, rotations, strict configs): the lowest
layer, importing nothing of event_fm, so one definition serves io up to the nodes."""
