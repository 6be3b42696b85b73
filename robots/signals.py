from django.dispatch import Signal

# "A robot was produced", with the new Robot as `robot`. Sent inside the transaction that
# saves the robot, however it is saved (API, admin, shell): a listener's writes commit or
# roll back with it. robots knows nothing of who listens.
robot_produced = Signal()
