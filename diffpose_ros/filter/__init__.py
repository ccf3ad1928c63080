"""Per-track 3D filter (ROS-free): each tracked person's root position and velocity over time,
a smoothed skeleton and their covariances, from the lifter's output per track id.

kinematic.py      batched constant-velocity / constant-acceleration Kalman filter (numpy)
people_filter.py  PeopleFilter: one filter per track id; gate, prediction, deletion
process_noise.py  process noise fitted on motion capture (+ process_noise.json, its values)
"""
