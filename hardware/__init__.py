"""The hardware layer, laid out by role.

    device.py, safety.py, clock.py, loop.py   the contract (Device lifecycle, channels by name), the
                                              safety filter and watchdogs, clocks, the real-time loop
    backends/    devices: simulated (sim_device), serial (serial_device), ROS 2 topics (ros2_device)
    links/       wire formats and transports the backends and emulators share: the s2r serial
                 protocol, ROS 2 messages and CDR, DDS and rclpy transports
    emulators/   stand-ins for real robots on real links (serial pseudo-terminal, ROS 2 topics), the
                 faults they inject, and the process they run in
    apps/        what runs the contract: deploy, hardware-in-the-loop, the ROS 2 deploy node, run logs
    faults/      shipped fault plans (YAML)

Nothing here imports a particular task: the loop runs the task's `sim.tasks.binding.Binding`.
"""
