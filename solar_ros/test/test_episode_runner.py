"""The episode runner resends a lost reset, and only that; checks use the learner's seeds.

A request or response of ``reset_episode`` can be lost while the service's endpoints are
still matching; that cannot be caused on demand over loopback DDS, so the runner's client
drops one here (the only fake): everything else is real rclpy with a peer node that serves
``reset_episode`` and publishes the episode's events, as the sim does.
"""

from typing import List

from rclpy.parameter import Parameter
from rclpy.task import Future
from solar_ros.nodes import qos
from solar_ros.nodes.episode_runner_node import EpisodeRunnerNode
from solar_ros_msgs.msg import EpisodeBudget, EpisodeEvent
from solar_ros_msgs.srv import ResetEpisode
from spinning import spin_for, spin_until, with_peer

TIMEOUT = 0.3  # s, the runner's reset_timeout
SEED = 5


class FakeSim:
    """Serve ``reset_episode`` on ``node`` like the sim: refuse while an episode runs."""

    def __init__(self, node, announce_start: bool = True) -> None:
        self.seeds: List[int] = []  # seed of every reset request received
        self.mean_action: List[bool] = []  # and whether it asked for the mean action
        self.running = False
        self._announce_start = announce_start
        self._episode = 0
        self._events = node.create_publisher(EpisodeEvent, 'episode_events', qos.EVENTS)
        node.create_service(ResetEpisode, 'reset_episode', self._on_reset)

    def _on_reset(self, request, response):
        self.seeds.append(int(request.seed))
        self.mean_action.append(bool(request.mean_action))
        if self.running:
            response.success, response.message = False, 'an episode is running'
            return response
        self.running = True
        self._episode += 1
        if self._announce_start:
            self.publish(EpisodeEvent.START)
        response.success, response.episode_id = True, self._episode
        return response

    def publish(self, kind: int) -> None:
        """Publish an event of the current episode; an END ends it."""
        self._events.publish(EpisodeEvent(episode_id=self._episode, task_id=1, kind=kind))
        self.running = self.running and kind != EpisodeEvent.END


def _runner(context, episodes: int) -> EpisodeRunnerNode:
    return EpisodeRunnerNode(context=context, parameter_overrides=[
        Parameter('paced', value=False), Parameter('episodes', value=episodes),
        Parameter('seed', value=SEED), Parameter('reset_timeout', value=TIMEOUT)])


def _lose_the_first_answer(runner: EpisodeRunnerNode, reaches_sim: bool) -> List[int]:
    """Make the runner's first reset get no answer; return the seeds of its calls.

    With ``reaches_sim`` the request is served and only its response is lost; without,
    the request itself never reaches the sim.
    """
    send = runner._client.call_async
    calls = []

    def call_async(request):
        calls.append(request.seed)
        if len(calls) > 1:
            return send(request)
        if reaches_sim:
            send(request)
        return Future()  # never done

    runner._client.call_async = call_async
    return calls


def test_a_lost_reset_request_is_sent_again_with_the_same_seed(context):
    runner = _runner(context, episodes=1)
    peer, executor = with_peer(runner, context, 'fake_sim')
    sim = FakeSim(peer)
    calls = _lose_the_first_answer(runner, reaches_sim=False)
    try:
        spin_until(executor, lambda: sim.seeds, 'the resent reset')
        assert sim.seeds == [SEED] and calls == [SEED, SEED] and runner.resends == 1
        spin_for(executor, 4 * TIMEOUT)
        assert sim.seeds == [SEED] and runner.resends == 1  # answered: no more copies
        sim.publish(EpisodeEvent.END)
        spin_until(executor, lambda: runner.finished, 'the end of the episode')
        assert runner.started == 1
    finally:
        executor.shutdown()
        runner.destroy_node()
        peer.destroy_node()


def test_a_refused_copy_of_a_reset_that_started_its_episode_waits_for_the_end(context):
    runner = _runner(context, episodes=2)
    peer, executor = with_peer(runner, context, 'fake_sim')
    sim = FakeSim(peer, announce_start=False)  # the first START is lost too
    _lose_the_first_answer(runner, reaches_sim=True)
    try:
        spin_until(executor, lambda: len(sim.seeds) == 2, 'the resent reset')
        assert sim.seeds == [SEED, SEED] and runner.resends == 1
        spin_for(executor, 4 * TIMEOUT)
        assert len(sim.seeds) == 2 and runner.started == 1  # waits; no new episode
        sim.publish(EpisodeEvent.END)
        spin_until(executor, lambda: len(sim.seeds) == 3, 'the reset of the next episode')
        assert sim.seeds[2] == SEED + 1 and runner.started == 2 and runner.ended == 1
    finally:
        executor.shutdown()
        runner.destroy_node()
        peer.destroy_node()


def test_checks_reset_with_the_seeds_of_the_learners_budget(context):
    """The budget's check_seeds belong to its last episodes asked for, with mean_action."""
    runner = EpisodeRunnerNode(context=context, parameter_overrides=[
        Parameter('seed', value=SEED), Parameter('reset_timeout', value=10.0)])
    peer, executor = with_peer(runner, context, 'fake_learner')
    sim = FakeSim(peer)
    budget = peer.create_publisher(EpisodeBudget, 'learner/episode_budget', qos.LATCHED)

    def run_episodes(count: int) -> None:
        for _ in range(count):
            spin_until(executor, lambda: sim.running, 'a reset')
            sim.publish(EpisodeEvent.END)
        spin_for(executor, 0.5)

    try:
        budget.publish(EpisodeBudget(session=1, issued=2))
        run_episodes(2)
        budget.publish(EpisodeBudget(session=1, issued=4, mean_action=True,
                                     check_seeds=[900, 901]))  # two checks
        run_episodes(2)
        budget.publish(EpisodeBudget(session=1, issued=5, mean_action=True,
                                     check_seeds=[903]))  # one more check
        run_episodes(1)
        budget.publish(EpisodeBudget(session=1, issued=6))  # a rollout
        run_episodes(1)
        assert sim.seeds == [SEED, SEED + 1, 900, 901, 903, SEED + 5]
        assert sim.mean_action == [False, False, True, True, True, False]
        assert runner.started == 6 and not sim.running
    finally:
        executor.shutdown()
        runner.destroy_node()
        peer.destroy_node()
